"""Example data of the Open Referral HSDS 3.1 specification (openreferral/specification,
`examples/`), CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/), for tests."""
