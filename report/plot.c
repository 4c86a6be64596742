/* plot.c: the learning-curve chart (plot.h): ranges and "nice" ticks per site panel,
 * axes, lines and markers, and the legend. */
#include "report/plot.h"

#include <math.h>
#include <stdio.h>

#include "report/canvas.h"

#define PANEL_W     440
#define PANEL_H     330
#define PER_ROW     3
#define LEFT        84 /* room for tick labels and the y title */
#define BOTTOM      58 /* room for tick labels and the x title */
#define TOP         34 /* the panel title */
#define RIGHT       16
#define LEGEND_LINE 24

static const dk_rgb paper = {255, 255, 255}, ink = {20, 20, 20}, grid = {225, 225, 225};

void dk_plot_method_colour(int m, unsigned char rgb[3])
{
    static const unsigned char colours[][3] = {
        {90, 90, 90},    {31, 119, 180}, {214, 39, 40}, {44, 160, 44},
        {148, 103, 189}, {255, 127, 14}, {140, 86, 75}, {23, 190, 207},
    };
    const unsigned char *c = colours[m % (int)(sizeof colours / sizeof colours[0])];
    rgb[0] = c[0], rgb[1] = c[1], rgb[2] = c[2];
}

static dk_rgb colour_of(int m)
{
    unsigned char c[3];
    dk_plot_method_colour(m, c);
    return (dk_rgb){c[0], c[1], c[2]};
}

/* 1, 2 or 5 times a power of ten, so that span/step is at most max_ticks. */
static double nice_step(double span, int max_ticks)
{
    static const double multiples[] = {1, 2, 5};
    double power = pow(10, floor(log10(span / max_ticks)));
    for (int i = 0; i < 3; i++)
        if (span / (multiples[i] * power) <= max_ticks + 1e-9) return multiples[i] * power;
    return 10 * power;
}

typedef struct frame {
    int x0, y0, w, h;      /* plot area in pixels, (x0, y0) its top-left */
    double r0, r1, d0, d1; /* round and Dice ranges */
} frame;

static int px(const frame *f, double round)
{
    return f->x0 + (int)lround((round - f->r0) / (f->r1 - f->r0) * f->w);
}

static int py(const frame *f, double dice)
{
    return f->y0 + f->h - (int)lround((dice - f->d0) / (f->d1 - f->d0) * f->h);
}

/* Rounds 0..max round, Dice over every value drawn, widened to tenths. */
static void ranges(const dk_results *r, int s, frame *f)
{
    double lo = INFINITY, hi = -INFINITY;
    int max_round = 1;
    for (int m = 0; m < r->method_count; m++) {
        const dk_results_cell *c = &r->methods[m].sites[s];
        for (int k = 0; k < c->curve_count; k++) {
            lo = fmin(lo, c->curve[k].dice);
            hi = fmax(hi, c->curve[k].dice);
            if (c->curve[k].round > max_round) max_round = c->curve[k].round;
        }
        if (!c->curve_count && isfinite(c->mean_dice)) {
            lo = fmin(lo, c->mean_dice);
            hi = fmax(hi, c->mean_dice);
        }
    }
    if (!isfinite(lo)) lo = 0, hi = 1;
    f->d0 = fmax(0, floor(lo * 10 - 1e-9) / 10);
    f->d1 = fmin(1, ceil(hi * 10 + 1e-9) / 10);
    if (f->d1 - f->d0 < 0.1) f->d0 = fmax(0, f->d1 - 0.1), f->d1 = f->d0 + 0.1;
    f->r0 = 0;
    f->r1 = max_round;
}

static void axes(dk_canvas *cv, const frame *f, const char *title)
{
    double ystep = nice_step(f->d1 - f->d0, 6), xstep = nice_step(f->r1 - f->r0, 8);
    if (xstep < 1) xstep = 1;
    char text[32];
    for (int i = (int)ceil(f->d0 / ystep - 1e-9); i * ystep <= f->d1 + 1e-9; i++) {
        double d = i * ystep; /* from the index, so 0 is 0 and not -1e-17 */
        int y = py(f, d);
        dk_canvas_line(cv, f->x0, y, f->x0 + f->w, y, 1, 0, grid);
        dk_canvas_line(cv, f->x0 - 5, y, f->x0, y, 1, 0, ink);
        snprintf(text, sizeof text, "%.2f", d);
        dk_canvas_text(cv, f->x0 - 8 - dk_canvas_text_width(text, 2), y - 7, text, 2, ink);
    }
    for (int i = 0; f->r0 + i * xstep <= f->r1 + 1e-9; i++) {
        double x = f->r0 + i * xstep;
        int X = px(f, x);
        dk_canvas_line(cv, X, f->y0 + f->h, X, f->y0 + f->h + 5, 1, 0, ink);
        snprintf(text, sizeof text, "%g", x);
        dk_canvas_text(cv, X - dk_canvas_text_width(text, 2) / 2, f->y0 + f->h + 9, text, 2, ink);
    }
    dk_canvas_line(cv, f->x0, f->y0, f->x0, f->y0 + f->h, 1, 0, ink);
    dk_canvas_line(cv, f->x0, f->y0 + f->h, f->x0 + f->w, f->y0 + f->h, 1, 0, ink);
    dk_canvas_text(cv, f->x0 + (f->w - dk_canvas_text_width("round", 2)) / 2, f->y0 + f->h + 32,
                   "round", 2, ink);
    const char *ytitle = "validation mean Dice";
    dk_canvas_text_up(cv, f->x0 - LEFT + 4, f->y0 + (f->h - dk_canvas_text_width(ytitle, 2)) / 2,
                      ytitle, 2, ink);
    dk_canvas_text(cv, f->x0 + (f->w - dk_canvas_text_width(title, 2)) / 2, f->y0 - TOP + 8, title,
                   2, ink);
}

static void lines(dk_canvas *cv, const frame *f, const dk_results *r, int s)
{
    for (int m = 0; m < r->method_count; m++) {
        const dk_results_cell *c = &r->methods[m].sites[s];
        dk_rgb colour = colour_of(m);
        if (!c->curve_count) {
            if (isfinite(c->mean_dice))
                dk_canvas_line(cv, f->x0, py(f, c->mean_dice), f->x0 + f->w, py(f, c->mean_dice), 2,
                               6, colour);
            continue;
        }
        for (int k = 0; k < c->curve_count; k++) {
            int x = px(f, c->curve[k].round), y = py(f, c->curve[k].dice);
            if (k)
                dk_canvas_line(cv, px(f, c->curve[k - 1].round), py(f, c->curve[k - 1].dice), x, y,
                               2, 0, colour);
            dk_canvas_fill(cv, x - 3, y - 3, 7, 7, colour);
        }
    }
}

static void legend(dk_canvas *cv, const dk_results *r, int top)
{
    for (int m = 0; m < r->method_count; m++) {
        int y = top + m * LEGEND_LINE + 8;
        const dk_results_method *me = &r->methods[m];
        bool dashed = true;
        for (int s = 0; s < r->site_count; s++)
            dashed = dashed && !me->sites[s].curve_count;
        dk_canvas_line(cv, LEFT, y, LEFT + 40, y, 2, dashed ? 6 : 0, colour_of(m));
        if (!dashed) dk_canvas_fill(cv, LEFT + 17, y - 3, 7, 7, colour_of(m));
        char text[200];
        snprintf(text, sizeof text, "%s%s", me->title,
                 dashed ? " (final mean Dice, no rounds)" : "");
        dk_canvas_text(cv, LEFT + 52, y - 8, text, 2, ink);
    }
}

dk_status dk_plot_curves(const dk_results *r, const char *path, int *width, int *height,
                         dk_err *err)
{
    int cols = r->site_count < PER_ROW ? r->site_count : PER_ROW;
    int rows = (r->site_count + PER_ROW - 1) / PER_ROW;
    int legend_h = r->method_count * LEGEND_LINE + 16;
    dk_canvas cv;
    dk_status st = dk_canvas_init(&cv, cols * PANEL_W, rows * PANEL_H + legend_h, paper, err);
    if (st) return st;
    for (int s = 0; s < r->site_count; s++) {
        frame f = {.x0 = (s % PER_ROW) * PANEL_W + LEFT,
                   .y0 = (s / PER_ROW) * PANEL_H + TOP,
                   .w = PANEL_W - LEFT - RIGHT,
                   .h = PANEL_H - TOP - BOTTOM};
        ranges(r, s, &f);
        axes(&cv, &f, r->sites[s].name);
        lines(&cv, &f, r, s);
    }
    legend(&cv, r, rows * PANEL_H);
    st = dk_canvas_write_png(&cv, path, err);
    *width = cv.width;
    *height = cv.height;
    dk_canvas_free(&cv);
    return st;
}
