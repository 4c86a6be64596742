/* clock.h: seconds on the monotonic clock, for durations, rates and ETAs (never for
 * dates: it does not jump when the wall clock is set). */
#ifndef DK_CLOCK_H
#define DK_CLOCK_H

/* Seconds since an arbitrary fixed point; subtract two readings. */
double dk_clock_seconds(void);

#endif
