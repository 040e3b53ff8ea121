# syntax=docker/dockerfile:1
# The slim chat image: the Slack and Discord bots, `db upgrade` and `adapters vllm-sync`.
# No torch: the bots embed /similar queries through the backend's /v1/embeddings
# (WRITERSROOM_RETRIEVAL_EMBEDDER_URL), so only the project's base dependencies go in.
#
#   docker build -f deploy/docker/bot.Dockerfile -t writersroom-bot:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/writersroom/.venv/bin:$PATH \
    WRITERSROOM_HOME=/data

# One uid/gid in both images, so the containers share the named volumes under /data.
RUN groupadd --system --gid 10001 writersroom \
 && useradd --system --uid 10001 --gid writersroom --home-dir /data --shell /usr/sbin/nologin writersroom \
 && mkdir -p /data/index /data/adapters /data/models /data/training \
 && chown -R writersroom:writersroom /data \
 && python3.11 -m venv /opt/writersroom/.venv
WORKDIR /opt/writersroom/app

# Dependencies in their own layer (it survives source edits): the base list only, never the ml extra.
COPY pyproject.toml README.md ./
COPY deploy/constraints.txt deploy/constraints.txt
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -c deploy/constraints.txt -r /tmp/requirements.txt

COPY bot bot
COPY backend backend
COPY retrieval retrieval
COPY training training
COPY config config
COPY screenplay screenplay
COPY llm llm
COPY store store
COPY registry registry
COPY observability observability
COPY files files
# Editable: settings and the prompt template are read from config/ beside the packages, which a wheel lacks.
RUN pip install -c deploy/constraints.txt -e .

USER writersroom
EXPOSE 3000 9101
ENTRYPOINT ["writersroom"]
CMD ["slack"]
