# xmodal service image: the package, its real offline corpora and the web page.
# Build: docker build -t xmodal .   Run: docker compose up   (see docker-compose.yml)
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 XMODAL_HOME=/data

# Debian data packages are the built-in corpora; libcairo renders the clip art SVGs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      openclipart-svg dataset-fashion-mnist opencv-doc libcairo2 make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/xmodal
COPY pyproject.toml README.md ./
COPY training ./training
COPY index ./index
COPY app ./app
# GPU hosts: docker build --build-arg FAISS=faiss-gpu-cu12 . (replaces faiss-cpu; same `import faiss`)
ARG FAISS=faiss-cpu
RUN pip install . \
 && if [ "$FAISS" != "faiss-cpu" ]; then pip uninstall -y faiss-cpu && pip install "$FAISS>=1.9,<2"; fi

VOLUME /data
EXPOSE 8000
# Prepares corpora, trains the default model and builds the demo index on first start (cached in /data),
# then serves on 0.0.0.0:8000.
CMD ["xmodal", "demo", "--host", "0.0.0.0"]
