# The `coder` image. Build the binary first, then the image:
#   cargo build --release --locked -p cli --bin coder
#   docker build -t coder .
# The binary sits at /opt/coder, so the same image runs any role:
#   docker run ... coder                                                  # the server
#   docker run --entrypoint /opt/coder ... coder wsproxy server          # a workspace proxy
FROM debian:bookworm-slim

# ca-certificates: HTTPS to the primary, relays and Terraform providers; postgresql: the built-in
# database when CODER_PG_CONNECTION_URL is unset; openssh-client and git: what templates and
# `coder` itself call out to; tini reaps the children a server starts (Terraform, PostgreSQL).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql openssh-client git tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --home-dir /home/coder --uid 1000 --user-group --shell /bin/bash coder

COPY --chmod=0755 target/release/coder /opt/coder

USER coder:coder
ENV HOME=/home/coder \
    CODER_HTTP_ADDRESS=0.0.0.0:3000
EXPOSE 3000
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/coder", "server"]
