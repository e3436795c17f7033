# kdbet in a container: Debian bookworm, the README's apt packages
# (scripts/install-dependencies.sh) and its Release build, installed to
# /usr/local with the shipped models. The entrypoint is kdbet:
#
#   docker build -t kdbet .
#   docker run --rm -v /studies/ds001:/data:ro -v /derivatives:/out kdbet bids /data /out participant
#   docker run --rm -v "$PWD":/work kdbet extract -i /work/head.nii.gz -m /work/head_mask.nii.gz
#   docker run --rm --gpus all kdbet ...   # with a CUDA LibTorch build; Debian's is CPU-only
#
# Apptainer: apptainer build kdbet.sif docker-daemon://kdbet:latest (or from a
# registry), then apptainer run kdbet.sif bids /data /out participant.
# scripts/container/check-recipe.sh runs these RUN steps in a clean bookworm
# chroot, for machines that cannot build images.
FROM debian:bookworm

COPY scripts/install-dependencies.sh /tmp/install-dependencies.sh
RUN /tmp/install-dependencies.sh && rm -rf /var/lib/apt/lists/* /tmp/install-dependencies.sh

COPY . /usr/src/KDBrainExtraction
RUN cmake -S /usr/src/KDBrainExtraction -B /tmp/kdbet-build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /tmp/kdbet-build -j "$(nproc)" \
 && cmake --install /tmp/kdbet-build \
 && ldconfig \
 && rm -rf /tmp/kdbet-build \
 && kdbet --version

WORKDIR /work
ENTRYPOINT ["kdbet"]
CMD ["--help"]
