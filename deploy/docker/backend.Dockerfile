# syntax=docker/dockerfile:1
# The backend + trainer image: `backend serve` (chat completions and /v1/embeddings),
# `trainer` / `train --now` (also under `accelerate launch`) and `index bootstrap`.
# The default models are fetched at build time, so containers start without a package index.
#
# GPU (CUDA base, CUDA torch wheels):
#   docker build -f deploy/docker/backend.Dockerfile -t writersroom-backend:0.1.0 .
# CPU (same file):
#   docker build -f deploy/docker/backend.Dockerfile -t writersroom-backend:0.1.0-cpu \
#     --build-arg BASE_IMAGE=python:3.11.13-slim-bookworm \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu .
# The CUDA "base" flavour is enough: torch's CUDA wheels carry their own CUDA libraries, and the
# NVIDIA container toolkit brings the driver.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-base-ubuntu22.04
FROM ${BASE_IMAGE}
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/writersroom/.venv/bin:$PATH \
    WRITERSROOM_HOME=/data \
    WRITERSROOM_MODEL_CACHE_DIR=/opt/writersroom/models \
    HF_HOME=/data/models/huggingface

# Python 3.11: the python:3.11 images have it; the CUDA (Ubuntu) images get it from deadsnakes.
RUN if ! command -v python3.11 >/dev/null; then \
        apt-get update \
     && apt-get install -y --no-install-recommends ca-certificates gpg-agent software-properties-common \
     && add-apt-repository -y ppa:deadsnakes/ppa \
     && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
     && apt-get purge -y --auto-remove software-properties-common gpg-agent \
     && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --system --gid 10001 writersroom \
 && useradd --system --uid 10001 --gid writersroom --home-dir /data --shell /usr/sbin/nologin writersroom \
 && mkdir -p /data/index /data/adapters /data/models /data/training \
 && chown -R writersroom:writersroom /data \
 && python3.11 -m venv /opt/writersroom/.venv

# torch first, from the index that matches the base (a bare `torch` from PyPI is another multi-GB build).
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0
WORKDIR /opt/writersroom/app

COPY pyproject.toml README.md ./
COPY deploy/constraints.txt deploy/constraints.txt
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['ml'] + p['optional-dependencies']['serve']))" \
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
COPY deploy/accelerate deploy/accelerate
# Editable: settings and the prompt template are read from config/ beside the packages, which a wheel lacks.
# The models are fetched as root into private temporary directories: open them to the runtime user.
RUN pip install -c deploy/constraints.txt -e ".[ml,serve]" \
 && writersroom models fetch \
 && chmod -R a+rX "${WRITERSROOM_MODEL_CACHE_DIR}"

USER writersroom
EXPOSE 8088 9102
ENTRYPOINT ["writersroom"]
CMD ["backend", "serve", "--host", "0.0.0.0"]
