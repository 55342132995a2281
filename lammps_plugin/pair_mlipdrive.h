/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 *   pair_style mlipdrive MODEL.pt [device cpu|cuda|cuda:N] [settings default|turbo]
 *                        [extensions DIR] [mode auto|ghosts|periodic] [KEY VALUE]...
 *   pair_coeff * * Cu Al          (symbols or atomic numbers; NULL under hybrid)
 *
 * KEY VALUE: every row of the settings table in driver/mlipdrive/settings.py
 * (dtype, threads, check_consistency, ...), applied over the preset.
 */
#ifndef MLIPDRIVE_PAIR_MLIPDRIVE_H
#define MLIPDRIVE_PAIR_MLIPDRIVE_H

#include <memory>
#include <string>
#include <vector>

#include "pair.h"

namespace mlipdrive {
struct PairState;
}

namespace LAMMPS_NS {

class PairMlipdrive : public Pair {
public:
    PairMlipdrive(class LAMMPS*);
    ~PairMlipdrive() override;

    void settings(int, char**) override;
    void coeff(int, char**) override;
    void init_style() override;
    double init_one(int, int) override;
    void init_list(int, class NeighList*) override;
    void compute(int, int) override;
    void finish() override;

private:
    void allocate();
    void load(const std::string& path);
    void check_comm_cutoff();

    /// everything torch-related, kept out of this header (see pair_mlipdrive.cpp)
    std::unique_ptr<mlipdrive::PairState> state;
    class NeighList* list = nullptr;
};

}  // namespace LAMMPS_NS

#endif
