# The recommendation server: `sasrec serve` on the versions root mounted at /models.
#   docker build -t sasrec-serving .
#   docker run -p 50051:50051 -v "$PWD/runs/shop:/models:ro" sasrec-serving
# Stage 1 builds wheels (sasrec with the Faiss and Redis extras); stage 2 installs
# them on a slim Python without compilers, pip caches or sources, and runs as a
# non-root user. TensorFlow is in the image because a version is a Keras model.
# Stage 1 has g++ so sasrec's wheel carries the compiled scoring kernel (setup.py:
# portable -O3 with AVX2/AVX-512 clones picked at load): `--engine auto` then
# serves with `compiled`. The kernel needs only libstdc++, already in the slim image.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY sasrec sasrec
COPY pipelines pipelines
COPY serving/sasrec serving/sasrec
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[ann,redis]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sasrec
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links /tmp/wheels "sasrec[ann,redis]" \
    && rm -rf /tmp/wheels
USER 10001
ENV PYTHONUNBUFFERED=1 SASREC_KEEP_FREED_MEMORY=0
EXPOSE 50051 9090
VOLUME ["/models"]
# The model loads and warms up before health turns SERVING: allow two minutes.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-m", "sasrec.serving.health_probe", "127.0.0.1:50051", "--timeout", "3"]
ENTRYPOINT ["sasrec", "serve"]
CMD ["--model", "/models", "--host", "0.0.0.0", "--port", "50051", "--metrics-port", "9090", \
     "--drain-seconds", "10", "--grace-seconds", "10"]
