# The proxy image: Debian's nginx on the same base as the service image (deploy/nginx/nginx.conf).
# Build: docker build -f deploy/proxy.Dockerfile -t xmodal-proxy .
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
COPY deploy/install.sh /opt/xmodal/deploy/
RUN /opt/xmodal/deploy/install.sh system proxy container \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /dev/stderr /var/log/nginx/error.log
COPY deploy/nginx/nginx.conf /etc/nginx/nginx.conf
# www-data
USER 33:33
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["nginx", "-g", "daemon off;"]
