# syntax=docker/dockerfile:1
# One image for every batchline process: migrations, workers, beat, Flower and
# the emulator (docker-compose.yml picks the command). Nothing secret is baked
# in: settings and keys come from the environment at run time.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/batchline
WORKDIR /src
# .dockerignore lets in only the package's sources (never .env or .venv).
COPY . .
RUN /opt/batchline/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/batchline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 batchline \
    && useradd --system --uid 10001 --gid batchline --create-home \
        --home-dir /home/batchline --shell /usr/sbin/nologin batchline \
    && mkdir -p /var/lib/batchline/emulator \
    && chown -R batchline:batchline /var/lib/batchline
COPY --from=build /opt/batchline /opt/batchline
USER batchline
WORKDIR /home/batchline
# Flower, the emulator.
EXPOSE 5555 8765
CMD ["celery", "-A", "batchline", "worker", "--loglevel=INFO"]
