# The two commands of README.md. Both create or reuse .venv (tools/setup_env.sh).
.PHONY: md test setup

setup:
	tools/setup_env.sh

md: setup
	OMP_NUM_THREADS=1 examples/lammps/run.sh

test: setup
	OMP_NUM_THREADS=1 .venv/bin/python -m pytest -p no:cacheprovider
