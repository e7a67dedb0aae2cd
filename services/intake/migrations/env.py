from services.intake.clients import models  # noqa: F401  (registers the tables)
from services.intake.tables import metadata
from shared.db.migrations import run_env

run_env(metadata)
