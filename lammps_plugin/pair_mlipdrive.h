/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 *   pair_style mlipdrive MODEL.pt [device cpu|cuda|cuda:N] [settings default|turbo]
 *                        [extensions DIR] [mode auto|ghosts|periodic] [remap_pairs on|off]
 *                        [KEY VALUE]...
 *   pair_coeff * * Cu Al          (symbols or atomic numbers; NULL under hybrid)
 *   fix U all pair 1 mlipdrive energy_uncertainty 0   (per-atom uncertainty, f_U)
 *
 * KEY VALUE: every row of the settings table in driver/mlipdrive/settings.py
 * (dtype, threads, check_consistency, variant, variant/energy,
 * uncertainty_threshold, non_conservative, scale, verify, ...), applied over the preset.
 */
#ifndef MLIPDRIVE_PAIR_MLIPDRIVE_H
#define MLIPDRIVE_PAIR_MLIPDRIVE_H

#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "pair.h"

namespace mlipdrive {
struct PairState;
struct Evaluation;
struct Tally;
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
#if MLIPDRIVE_LAMMPS_HAS_PAIR_FINISH
    void finish() override;
#else
    void finish();  // older LAMMPS have no Pair::finish(): no end-of-run timing line
#endif
    void write_restart(FILE*) override;
    void read_restart(FILE*) override;
    /// "energy_uncertainty": the last step's per-atom uncertainty (for fix pair)
#if MLIPDRIVE_LAMMPS_HAS_EXTRACT_PERATOM
    void* extract_peratom(const char*, int&) override;
#else
    void* extract_peratom(const char*, int&);  // older LAMMPS have neither it nor fix pair
#endif

private:
    void allocate();
    void load(const std::string& path);
    void check_comm_cutoff();
    /// pair_style's KEYWORD VALUE pairs into the state
    void read_keywords(int narg, char** arg, const char* usage);
    /// the atomic number pair_coeff gives a type (-1 for NULL), or an error
    int element_of_type(int type, const std::string& text);
    /// newton, dimension, atom IDs, units: what a run needs
    void check_run_setup();
    /// the System's layout (periodic, mixed or ghosts: mlipdrive_system.h) into the state
    void choose_layout();
    /// LAMMPS rebuilt its neighbour list (or may have: any setup), or the
    /// number of atoms changed, since the last step
    bool list_rebuilt();
    /// verify on: the first difference between the kept System and one built
    /// from scratch (empty if none)
    std::string verify_system();
    /// the message for an evaluation that threw: for an error inside the model in a
    /// split layout, that the model may not support domain decomposition and how
    /// to run it whole
    std::string evaluation_failure(const std::exception& exception) const;
    /// an error if the model has long-range modules and this layout splits the structure
    void refuse_long_range_split();
    /// this step's model outputs (conservative, or with the heads the settings ask for)
    mlipdrive::Evaluation evaluate(bool need_virial);
    /// forces, virial and energies of one evaluation into LAMMPS's arrays
    void store(const mlipdrive::Evaluation& evaluation, mlipdrive::Tally& tally);
    /// the energy's gradients as forces (into tally.f) and virial
    void store_gradients(const mlipdrive::Evaluation& evaluation, mlipdrive::Tally& tally);
    /// the energies alone (eng_vdwl, eatom)
    void store_energies(const mlipdrive::Evaluation& evaluation);
    /// non_conservative on/forces: the head's forces, net force removed over all
    /// ranks (a collective operation)
    void store_head_forces(const mlipdrive::Evaluation& evaluation, mlipdrive::Tally& tally);
    /// stress from the head: an error if this step needs a virial the model cannot give
    void check_head_virial();
    /// the uncertainty check of one step (a collective operation)
    void check_uncertainty(const mlipdrive::Evaluation& evaluation);

    /// the words of pair_style and pair_coeff, kept for restart files
    std::vector<std::string> style_args;
    std::vector<std::string> coeff_args;
    /// the communication cutoff this pair style set (0: none); kept across
    /// pair_style lines and in restart files, which also keep comm_modify cutoff
    double comm_cutoff_set = 0.0;

    /// everything torch-related, kept out of this header (see pair_mlipdrive.cpp)
    std::unique_ptr<mlipdrive::PairState> state;
    class NeighList* list = nullptr;
};

}  // namespace LAMMPS_NS

#endif
