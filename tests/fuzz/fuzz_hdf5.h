/* fuzz_hdf5.h: for the HDF5 harnesses: dualkd must close every HDF5 handle it
 * opens, whatever the input. libhdf5 1.10.8 itself leaks memory on some damaged
 * files (e.g. H5O__cache_deserialize's error path), which scripts/fuzz tells
 * LeakSanitizer to ignore (tests/fuzz/lsan.supp); a handle dualkd forgets would
 * hide among those, so the harness counts open handles around each input and
 * aborts when any is left open. */
#ifndef DK_FUZZ_HDF5_H
#define DK_FUZZ_HDF5_H

#include <hdf5.h>
#include <stdlib.h>

/* Open HDF5 identifiers of the kinds dualkd opens (files, groups, datasets,
 * attributes, datatypes, dataspaces, property lists). */
static inline long dk_fuzz_h5_open_ids(void)
{
    static const H5I_type_t kinds[] = {H5I_FILE,     H5I_GROUP,     H5I_DATASET,    H5I_ATTR,
                                       H5I_DATATYPE, H5I_DATASPACE, H5I_GENPROP_LST};
    static int ready;
    long total = 0;
    if (!ready) {
        H5open();
        /* No free lists: freed HDF5 memory goes back to malloc at once, so ASan
         * sees use after free and libFuzzer's per-input leak check stays cheap. */
        H5set_free_list_limits(0, 0, 0, 0, 0, 0);
        ready = 1;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        hsize_t n = 0;
        if (H5Inmembers(kinds[i], &n) >= 0) total += (long)n;
    }
    return total;
}

/* Abort (a crash libFuzzer records) when an input left handles open. */
static inline void dk_fuzz_h5_check_ids(long before)
{
    if (dk_fuzz_h5_open_ids() != before) abort();
}

#endif
