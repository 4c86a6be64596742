/* demo_plan.c: the sizes and configs of `dualkd demo` (demo_plan.h). */
#include "cli/demo_plan.h"

#include <stdio.h>

/* Three sites that differ as real ones do: slice thickness and contrast. Site C has
 * the repository's own contrast (DESS-like), A and B do not. */
static const dk_demo_site sites[DK_DEMO_SITES] = {
    {"site-a", "clinical-3.3mm", "pd-fs", 101},
    {"site-b", "clinical-4.5mm", "t1", 202},
    {"site-c", "clinical-3.3mm", "dess", 303},
};

static const dk_demo_method methods[DK_DEMO_METHODS] = {
    {DK_DEMO_TEACHER, "teacher", "teacher (zero-shot)"},
    {DK_DEMO_LOCAL, "local", "local supervised-only"},
    {DK_DEMO_FED_SUP, "fedavg-sup", "supervised-only FedAvg"},
    {DK_DEMO_FED_KD, "fedavg-dual", "dual-distillation FedAvg"},
};

/* --tiny: the smallest run that still passes every stage (tests, CI). */
static dk_demo_plan tiny(unsigned seed)
{
    return (dk_demo_plan){.quick = true, .tiny = true, .repository = 2, .labelled = 2,
                          .unlabelled = 0, .validation = 1, .rounds = 2, .local_steps = 2,
                          .passes = 1, .patch = {8, 112, 112}, .seed = seed};
}

dk_demo_plan dk_demo_plan_make(dk_demo_size size, unsigned seed)
{
    bool quick = size == DK_DEMO_QUICK;
    dk_demo_plan p = size == DK_DEMO_TINY ? tiny(seed) : (dk_demo_plan){
        .quick = quick,
        .repository = quick ? 4 : 12,
        .labelled = 2,
        .unlabelled = quick ? 1 : 4,
        .validation = quick ? 2 : 4,
        .rounds = quick ? 3 : 6,
        .local_steps = quick ? 8 : 20,
        .passes = quick ? 1 : 2,
        .patch = {8, 112, 112}, /* z: site-b's 4.5 mm volumes have 9-11 slices */
        .seed = seed,
    };
    for (int i = 0; i < DK_DEMO_SITES; i++)
        p.sites[i] = sites[i];
    for (int i = 0; i < DK_DEMO_METHODS; i++)
        p.methods[i] = methods[i];
    return p;
}

/* A 4-level U-Net of base width 8 (0.35 M parameters): a quarter of the teacher's
 * cost per voxel, so three sites train on two cores within the budget. */
static const char network[] =
    "{\"levels\": 4, \"base_width\": 8, \"pool\": [[1, 2, 2], [1, 2, 2], [2, 2, 2]], "
    "\"kernel\": [[3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]], \"norm\": \"instance\", "
    "\"leaky_slope\": 0.01, \"norm_eps\": 1e-5}";

/* Ramps take a third of the run, as the original's 40-of-~120-epoch sigmoid ramp. */
bool dk_demo_student_config(const dk_demo_plan *p, char *buf, size_t cap)
{
    long steps = (long)p->rounds * p->local_steps, ramp = steps / 3 > 1 ? steps / 3 : 1;
    int n = snprintf(buf, cap,
                     "{\n  \"network\": %s,\n"
                     "  \"patch\": [%d, %d, %d], \"batch\": 2, \"steps\": %ld,\n"
                     "  \"steps_per_epoch\": %d, \"checkpoint_every\": %d,\n"
                     "  \"distill\": {\"transfer_batch\": 2,\n"
                     "    \"response\": {\"ramp_steps\": %ld}, \"feature\": {\"ramp_steps\": %ld}}\n"
                     "}\n",
                     network, p->patch[0], p->patch[1], p->patch[2], steps, p->local_steps,
                     p->local_steps, ramp, ramp);
    return n > 0 && (size_t)n < cap;
}
