#!/bin/sh
# lint_err_prefix.sh: dk_err_prefix writes the ": " itself (distill/err.h), so no call
# may pass a format ending in ": " (that printed "file: : message"). Run by ctest;
# prints each offending call and exits 1. Usage: lint_err_prefix.sh SOURCE_DIR
cd "${1:-.}" || exit 2
find distill datasets teacher httpapi student cli tests bench -name '*.c' 2>/dev/null |
    xargs perl -0777 -ne '
        while (/dk_err_prefix\s*\((.*?)\)\s*;/sg) {
            my $call = $1;
            my $line = 1 + (substr($_, 0, $-[0]) =~ tr/\n//);
            if ($call =~ /:\s*"\s*(,|$)/s) { print "$ARGV:$line: format ends in \": \"\n"; $bad = 1 }
        }
        END { exit($bad ? 1 : 0) }'
