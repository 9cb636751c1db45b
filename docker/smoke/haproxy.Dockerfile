# Local stand-in for the haproxy image (no registry reachable): Debian's haproxy (2.6) on the smoke base,
# reading its config where the upstream image does, in the foreground as the haproxy user.
ARG BASE_IMAGE=localhost/bertserve-base:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /usr/local/etc/haproxy
# hadolint ignore=DL3066
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
