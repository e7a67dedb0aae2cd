# The one Casework image: every process is `casework <command>` (api, worker, migrate, topics).
# docker-compose.yml builds it as casework:local; see docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 casework \
    && useradd --system --uid 10001 --gid casework --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin casework

# The locked runtime dependencies first, in their own layer: it changes far less often than the
# code. Not the `embedded` extra (embedded PostgreSQL and broker): that is for `make run` and
# the tests only, and lives in requirements-dev.lock.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -r /tmp/requirements.lock && rm /tmp/requirements.lock

# Then the project itself (non-editable; the migrations ship as package data), and no sources.
COPY pyproject.toml /tmp/casework/
COPY shared /tmp/casework/shared
COPY services /tmp/casework/services
RUN pip install --no-cache-dir --no-deps /tmp/casework && rm -rf /tmp/casework

# No .env is baked in: configuration comes from CASEWORK_* environment variables.
WORKDIR /app
# Where workers file signed audit checkpoints (a volume in docker-compose.yml takes this owner).
RUN mkdir -p /var/lib/casework/audit && chown casework:casework /var/lib/casework/audit
USER casework

ENTRYPOINT ["casework"]
CMD ["--help"]
