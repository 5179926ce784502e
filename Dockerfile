# One image for every AZUREZO process (Synapse and its workers with our module, the coordination
# service, the bot, the CLI, the scheduled import and backup jobs). Not built in CI (no Docker
# engine there); docker-compose.yml is checked by tests/azurezo_cli/test_compose.py.
# Python and Debian pinned; every Python dependency pinned in requirements.lock (make requirements.lock).
FROM python:3.11.11-slim-bookworm

# pg_dump/pg_restore for `azurezo backup` (PostgreSQL 15: the server of docker-compose.yml).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/azurezo
COPY requirements.lock /opt/azurezo/requirements.lock
RUN pip install --no-cache-dir --no-deps -r requirements.lock
COPY . /opt/azurezo
RUN pip install --no-cache-dir --no-deps /opt/azurezo

# The templates (config/) are read from the source tree, not from site-packages.
ENV AZUREZO_CONFIG_DIR=/opt/azurezo/config \
    AZUREZO_HOME=/data \
    PYTHONUNBUFFERED=1
VOLUME /data
ENTRYPOINT []
CMD ["azurezo", "--help"]
