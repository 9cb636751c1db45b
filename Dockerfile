# syntax=docker/dockerfile:1
# bertserve image. CPU by default; CUDA with --build-arg TORCH_SPEC="torch==2.13.0" and a CUDA base image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TORCH_SPEC=torch==2.13.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/bertserve
WORKDIR /src
# Dependencies first (layer cache): only pyproject and constraints change them.
COPY pyproject.toml constraints.txt README.md ./
RUN /opt/bertserve/bin/pip install "${TORCH_SPEC}" \
 && mkdir -p service models \
 && touch service/__init__.py models/__init__.py \
 && /opt/bertserve/bin/pip install --constraint constraints.txt .
COPY service ./service
COPY models ./models
RUN /opt/bertserve/bin/pip install --no-deps --force-reinstall .

FROM ${BASE_IMAGE} AS runtime
RUN useradd --create-home --uid 10001 bertserve
COPY --from=build /opt/bertserve /opt/bertserve
ENV PATH=/opt/bertserve/bin:$PATH \
    BERTSERVE_HOST=0.0.0.0 \
    BERTSERVE_PORT=8080 \
    BERTSERVE_HOME=/data \
    HF_HUB_OFFLINE=1
RUN mkdir -p /data && chown bertserve /data
USER bertserve
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=600s --retries=3 \
  CMD ["python3", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2).status != 200)"]
ENTRYPOINT ["bertserve", "serve"]
