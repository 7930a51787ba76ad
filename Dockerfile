# memometer container images (see deploy/README.md). Two runtime targets:
#
#   docker build --target gpu -t memometer:gpu .   # default target: CUDA 11.2 + cuDNN 8, backend node-gpu
#   docker build --target cpu -t memometer:cpu .   # no GPU: backend wasm (dev clusters, CPU pools)
#
# The gpu target needs internet at BUILD time: the install script of @tensorflow/tfjs-node-gpu
# (an optionalDependency) downloads libtensorflow 2.9.1 (GPU build, ~400 MB) and the prebuilt
# N-API addon from storage.googleapis.com. The build fails if either is missing
# (docker/check-gpu-binding.sh) instead of producing an image that only fails in the pod.
#
# Runtime stages hold node, the production node_modules, dist/, proto/ (read at run time by
# server reflection), examples/ and the two docker/ scripts: no npm, no compilers, no sources.
# They run as UID/GID 10001 and write only to /tmp (mount an emptyDir there; the root
# filesystem can be read-only).

# Base images. Override with --build-arg (a pinned Node release, or a mirror of the CUDA image):
#   node:${NODE_VERSION}-bookworm        build stages (npm, python3, make, g++)
#   node:${NODE_VERSION}-bookworm-slim   cpu runtime
#   (the gpu stages copy node and npm from the build stage: one Node binary in every image)
#   ${CUDA_REPO}:${CUDA_TAG}             gpu runtime: the CUDA 11.2 + cuDNN 8.1 that libtensorflow
#                                        2.9.1 (tfjs-node-gpu 4.22) was built against.
# NVIDIA deletes end-of-life CUDA tags from Docker Hub and NGC (11.2.0 and 11.2.1 went in 2023;
# 11.2.2 was kept then). Keep a copy in your own registry and build with
# --build-arg CUDA_REPO=registry.example.com/mirror/nvidia-cuda (deploy/README.md).
# Node.js 26 (LTS, supported to April 2029): the release pinned in .node-version, which CI and
# scripts/with-node.sh use (test/deploy checks that the two agree). The official Node 26 binary
# needs glibc >= 2.28; the CUDA image's Ubuntu 20.04 has 2.31.
ARG NODE_VERSION=26.12.1
ARG CUDA_REPO=nvidia/cuda
ARG CUDA_TAG=11.2.2-cudnn8-runtime-ubuntu20.04

# ---- build: compile TypeScript to dist/ -------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts off: tsc needs no native addon, and this keeps the libtensorflow download out of here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- prod-deps-cpu: production node_modules without the optional GPU binding ------------------
FROM node:${NODE_VERSION}-bookworm AS prod-deps-cpu
WORKDIR /app
COPY package.json package-lock.json ./
# No production dependency needs an install script (the wasm backend ships its .wasm files).
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

# ---- prod-deps-gpu: production node_modules with @tensorflow/tfjs-node-gpu ---------------------
# Installed on the runtime's own base (Ubuntu 20.04, glibc 2.31) so that an addon that
# node-pre-gyp has to compile (when no prebuilt one downloads) links against the runtime's libc.
# The compilers it may need stay in this stage.
FROM ${CUDA_REPO}:${CUDA_TAG} AS prod-deps-gpu
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
WORKDIR /app
COPY package.json package-lock.json ./
RUN node /usr/local/lib/node_modules/npm/bin/npm-cli.js ci --omit=dev --foreground-scripts --no-audit --no-fund
COPY docker/check-gpu-binding.sh ./docker/
RUN sh docker/check-gpu-binding.sh /app

# ---- cpu: runtime, wasm backend -----------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS cpu
# A fixed non-root user; npm, yarn and corepack are not needed at run time.
RUN groupadd --system --gid 10001 memometer \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin memometer \
    && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn-* \
    && rm -f /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg
WORKDIR /app
COPY --from=prod-deps-cpu /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY proto ./proto
COPY examples ./examples
COPY docker/entrypoint.sh docker/healthcheck.mjs ./docker/
ENV NODE_ENV=production \
    MEMOMETER_BACKEND=wasm \
    MEMOMETER_PORT=50051
USER 10001:10001
EXPOSE 50051
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["node", "/app/docker/healthcheck.mjs"]
ENTRYPOINT ["/bin/sh", "/app/docker/entrypoint.sh"]
CMD ["serve"]

# ---- gpu: runtime, CUDA 11.2 + cuDNN 8 for libtensorflow 2.9 (the default target) --------------
FROM ${CUDA_REPO}:${CUDA_TAG} AS gpu
COPY --from=build /usr/local/bin/node /usr/local/bin/node
RUN groupadd --system --gid 10001 memometer \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin memometer
WORKDIR /app
COPY --from=prod-deps-gpu /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY proto ./proto
COPY examples ./examples
COPY docker/entrypoint.sh docker/healthcheck.mjs ./docker/
# node-gpu: a pod whose binding or CUDA libraries are missing fails at start-up (FAILED_PRECONDITION)
# instead of training on the CPU. CUDA's JIT cache goes to the writable /tmp: libtensorflow 2.9
# has no kernels for GPUs newer than it (Hopper), which then compile PTX at start-up.
ENV NODE_ENV=production \
    MEMOMETER_BACKEND=node-gpu \
    MEMOMETER_PORT=50051 \
    CUDA_CACHE_PATH=/tmp/cuda-cache \
    CUDA_CACHE_MAXSIZE=2147483648 \
    TF_FORCE_GPU_ALLOW_GROWTH=true
USER 10001:10001
EXPOSE 50051
# Long start period: the backend initialises (and CUDA may JIT-compile) before the port opens.
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 CMD ["node", "/app/docker/healthcheck.mjs"]
ENTRYPOINT ["/bin/sh", "/app/docker/entrypoint.sh"]
CMD ["serve"]
