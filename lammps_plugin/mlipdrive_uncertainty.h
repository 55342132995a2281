/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * The energy-uncertainty check over MPI ranks: the C++ side of
 * driver/mlipdrive/uncertainty.py. Each rank holds the uncertainties of its own
 * atoms; one MPI_Allreduce per step finds whether any atom is above the
 * threshold, and only then the ranks' largest values go to rank 0, which names
 * the atoms exactly as Python's worst_atoms() does.
 */
#pragma once

#include <string>
#include <vector>

#include <mpi.h>

namespace mlipdrive {

/// mlipdrive.uncertainty.WORST_SHOWN
constexpr int WORST_SHOWN = 5;

/// Atoms above the threshold on all ranks: `count` on every rank (0: none);
/// `worst` ("atom 17 (0.312 eV), ...") on rank 0 only.
struct UncertaintyReport {
    long count = 0;
    std::string worst;
};

/// `values[i]` is the uncertainty (eV) of the atom called `ids[i]`. A collective
/// operation on `world`.
UncertaintyReport gather_uncertainty(MPI_Comm world, const std::vector<double>& values,
                                     const std::vector<long>& ids, double threshold);

}  // namespace mlipdrive
