# syntax=docker/dockerfile:1.7
# The codesense image: what KFP component pods and KubeRay RayJob pods (head and workers) run.
#
#   docker build -t registry.example.com/codesense:0.1.0 .                       # CPU (the default)
#   docker build --build-arg FLAVOR=gpu --build-arg TORCH_INDEX_URL= \
#                -t registry.example.com/codesense:0.1.0-gpu .                    # CUDA, for gpu-small/gpu-standard
#
# Then set `jobs.kuberay.image` and `pipeline.image` in codesense.yaml to the pushed name. Like a Helm chart's
# image.tag, the Ray version here must match `jobs.kuberay.ray_version` (KubeRay talks to the head with it)
# and the ray the pipeline's components use as a client.
#
# Layout inside the image (the RayJob entrypoints rely on it): /app is the working directory and holds
# jobs/, codesense_ray/, kfp_wrappers/ and a default codesense.yaml; mount your own config (a ConfigMap at
# /etc/codesense, see jobs.kuberay.config_map) and data volume (/app/data, jobs.kuberay.data_volume_claim).

ARG RAY_VERSION=2.60.0
ARG PYTHON=py311
# cpu | gpu (rayproject's CUDA build: the embedding and fine-tuning stages use the node's GPU)
ARG FLAVOR=cpu
FROM rayproject/ray:${RAY_VERSION}-${PYTHON}-${FLAVOR}

# CPU wheels of torch for the cpu flavour (no multi-GB CUDA download); empty for the gpu flavour (PyPI's CUDA build).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

# git for `codesense converge` (clones); the base image runs as the unprivileged `ray` user (uid 1000, gid 100).
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
USER ray

WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    TOKENIZERS_PARALLELISM=false \
    DVC_NO_ANALYTICS=1 \
    CODESENSE_HOME=/app/.codesense

# Dependencies first (the layer is reused while only code changes). ray itself comes from the base image:
# pip sees `ray[data,serve]>=2.40` satisfied by it and never replaces the image's ray.
COPY --chown=1000:100 pyproject.toml README.md ./
COPY --chown=1000:100 codesense_ray ./codesense_ray
RUN pip install "torch==${TORCH_VERSION}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
 && pip install ".[llm,orchestration]" "dvc[s3]" \
 && python -c "import codesense_ray, kfp, kubernetes, dvc, ray; print('ray', ray.__version__)"

# Thin entrypoints and adapters: the RayJob entrypoint is `python jobs/<stage>.py --config ...` run from /app,
# and KFP lightweight components import codesense_ray / kfp_wrappers from here (PYTHONPATH=/app).
COPY --chown=1000:100 jobs ./jobs
COPY --chown=1000:100 kfp_wrappers ./kfp_wrappers
COPY --chown=1000:100 serve_configs ./serve_configs
COPY --chown=1000:100 codesense.yaml gates.yaml gates-model.yaml ./
# `codesense explain` reads its concepts from the docs (one source with docs/).
COPY --chown=1000:100 docs ./docs
RUN mkdir -p /app/data/raw /app/.codesense

# No ENTRYPOINT: KubeRay starts `ray start ...` in head/worker pods and KFP runs the component command.
CMD ["codesense", "--help"]
