# syntax=docker/dockerfile:1
# ragserver: the API server with CPU torch and the bundled models (embedding model and the
# default generator's weights) installed at build time, so nothing is downloaded at start.
#   docker build -t ragserver .
#   docker run -p 8000:8000 -v ragdata:/data ragserver
# Configured through RAG_* environment variables (see .env.example); docker-compose.yml runs it
# next to a Chroma server. tests/deploy/ checks this file against the code.

# ---- build: the same install script `make` runs, into /opt/venv, as a wheel, no dev extras ----
FROM python:3.11-slim AS build

# scripts/install.sh installs torch==2.13.0 first; the PyTorch CPU index makes pip take the
# 2.13.0+cpu wheel instead of the CUDA build (GBs of nvidia-* wheels) from PyPI.
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=120

WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    scripts/install.sh /opt/venv "" wheel

# ---- runtime: the virtual environment only, run by a non-root user ----
FROM python:3.11-slim AS runtime

# The Debian packages the server uses (Tesseract and its English data, for OCR) come from
# scripts/system_deps.sh, the one list that make run and the tests install from too; it is
# mounted for this step only, so the image keeps nothing of the source tree.
RUN --mount=type=bind,source=scripts/system_deps.sh,target=/tmp/system_deps.sh \
    bash /tmp/system_deps.sh runtime \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 ragserver \
    && useradd --system --no-log-init --uid 10001 --gid ragserver \
       --create-home --home-dir /home/ragserver ragserver \
    && mkdir /data \
    && chown ragserver:ragserver /data

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    RAG_DATA_DIR=/data \
    RAG_SERVER__HOST=0.0.0.0 \
    RAG_SERVER__PORT=8000

# Collections, uploads, the embedding cache and the converted generator live here.
VOLUME ["/data"]
WORKDIR /home/ragserver
# Numeric, so the runtime (and Kubernetes' runAsNonRoot) can tell it is not root.
USER 10001:10001
EXPOSE 8000

# /readyz is 503 until the models and the store are loaded; slim images have no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('RAG_SERVER__PORT', '8000') + '/readyz', timeout=4)"]

ENTRYPOINT ["ragserver"]
CMD ["serve", "--host", "0.0.0.0"]
