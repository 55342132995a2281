/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * Registration only, in libmlipdrive_pair.so: the loader (mlipdrive_loader.cpp,
 * the file LAMMPS loads) has checked the LAMMPS version and opened this library
 * with its own symbol scope, and calls mlipdrive_pair_init with the arguments
 * LAMMPS gave to lammpsplugin_init.
 */
#include "mlipdrive_lammpsplugin.h"

#include "pair_mlipdrive.h"

using namespace LAMMPS_NS;

static Pair *mlipdrive_pair_creator(LAMMPS *lmp) {
    return new PairMlipdrive(lmp);
}

/// The style's names: `mlipdrive`, and metatomic's numbered spellings for two or
/// more models under hybrid/overlay (`pair_style hybrid/overlay mlipdrive_1 A.pt
/// mlipdrive_2 B.pt`, then `pair_coeff * * mlipdrive_1 ...`), all the same style.
static const char *const STYLE_NAMES[] = {
    "mlipdrive",   "mlipdrive_1", "mlipdrive_2", "mlipdrive_3", "mlipdrive_4",
    "mlipdrive_5", "mlipdrive_6", "mlipdrive_7", "mlipdrive_8", "mlipdrive_9",
};

extern "C" void mlipdrive_pair_init(void *lmp, void *handle, void *regfunc) {
    for (const char *name: STYLE_NAMES) {
        mlipdrive_plugin_t plugin;
        plugin.version = MLIPDRIVE_LAMMPS_VERSION_STRING;
        plugin.style = "pair";
        plugin.name = name;
        plugin.info = "mlipdrive: metatomic models as a pair style (torch " MLIPDRIVE_TORCH_VERSION ")";
        plugin.author = "the mlipdrive developers";
        plugin.creator.v1 = reinterpret_cast<mlipdrive_plugin_factory1 *>(&mlipdrive_pair_creator);
        plugin.handle = handle;
        reinterpret_cast<mlipdrive_plugin_regfunc>(regfunc)(&plugin, lmp);
    }
}
