#!/bin/sh
# lint_err_rule.sh: the two parts of the error rule (distill/err.h) a grep can check.
#  1. dk_err_prefix writes the ": " itself: no call passes a format ending in ": "
#     (that printed "file: : message").
#  2. Library code returns the status it has, never err->code: err may be NULL.
#     Setting it (err->code = ...) is fine; distill/err.c owns the object.
# Run by ctest; prints each offending line and exits 1. Usage: lint_err_rule.sh SOURCE_DIR
cd "${1:-.}" || exit 2
status=0
find distill datasets teacher httpapi student report cli tests bench -name '*.c' 2>/dev/null |
    xargs perl -0777 -ne '
        while (/dk_err_prefix\s*\((.*?)\)\s*;/sg) {
            my $call = $1;
            my $line = 1 + (substr($_, 0, $-[0]) =~ tr/\n//);
            if ($call =~ /:\s*"\s*(,|$)/s) { print "$ARGV:$line: dk_err_prefix format ends in \": \"\n"; $bad = 1 }
        }
        END { exit($bad ? 1 : 0) }' || status=1
if find distill datasets teacher httpapi student report -name '*.c' ! -path distill/err.c 2>/dev/null |
    xargs grep -HnP 'err->code\b(?!\s*=[^=])'; then
    echo "lint_err_rule: the lines above read err->code; return the status you have" >&2
    status=1
fi
exit $status
