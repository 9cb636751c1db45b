# Local stand-in for the redis image (no registry reachable): Debian's redis-server on the smoke base.
ARG BASE_IMAGE=localhost/bertserve-base:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
# hadolint ignore=DL3066
USER redis
CMD ["redis-server"]
