# xmodal service image: a builder stage makes the venv, a slim runtime stage serves it as a non-root user.
#   CPU:  docker build -t xmodal .
#   GPU:  docker build --build-arg VARIANT=gpu -t xmodal:gpu .    (CUDA torch + faiss-gpu-cu12)
# Both install with deploy/install.sh, the step `make setup` runs. Sources are pip's own variables,
# passed as build args: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu gives the CPU variant
# the small CPU-only torch; PIP_FIND_LINKS / PIP_CERT point pip at local wheels / a CA bundle
# (make image-test bind-mounts this machine's wheel folders that way). Unset, pip uses PyPI.
# BASE: any Debian bookworm image with python3.11 and venv (make image-test builds one with debootstrap).
# Models, indexes and corpora live on the /data volume; see docker-compose.yml for the services.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS builder
ARG VARIANT=cpu
ARG PIP_FIND_LINKS
ARG PIP_EXTRA_INDEX_URL
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DEFAULT_TIMEOUT=180
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/install.sh deploy/
COPY training training
COPY index index
COPY app app
RUN deploy/install.sh python /opt/venv "${VARIANT}"

FROM ${BASE} AS runtime
# data: the Debian packages of the built-in corpora (what `xmodal demo` and the trainer read);
# empty for an image that only serves models and indexes made elsewhere.
ARG CORPORA=data
COPY deploy/install.sh /opt/xmodal/deploy/
# hadolint ignore=SC2086
RUN /opt/xmodal/deploy/install.sh system runtime container ${CORPORA} \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 xmodal \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home xmodal \
 && mkdir -p /data && chown xmodal:xmodal /data
COPY --from=builder /opt/venv /opt/venv
COPY deploy/seed.py deploy/seed.sh /opt/xmodal/deploy/
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 XMODAL_HOME=/data
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('XMODAL_PORT', '8000'), timeout=4)"]
# tini as PID 1: uvicorn re-raises SIGTERM after a graceful shutdown, which PID 1 itself would ignore
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["xmodal", "serve", "--host", "0.0.0.0", "--watch"]
