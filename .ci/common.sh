# shellcheck shell=bash
# Sourced by .ci/run, .ci/mpi-test.sh and .ci/slurm-test.sh: what the CI scripts share.

# Cargo from rustup's default place when it is not on PATH yet (a fresh login shell).
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

# Runs "$@" as root: directly when we are root, through sudo when it exists.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# Installs Debian packages quietly. The time limits make a stuck mirror fail the stage rather
# than hang CI. Chained with &&: callers run it where errexit may not apply (inside `||`).
apt_install() {
    as_root timeout 300 apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "$@" >/dev/null
}
