#!/bin/sh
# The layering rule (docs/ARCHITECTURE.md §1), checked two ways:
#   1. the include graph: every quoted include of a library source resolves to
#      its own folder or to a folder its layer may use;
#   2. the build's include folders: with the flags the GNUmakefile gives a
#      module (exported as INC_<module>), a header it may not use does not
#      compile, and one it may use does.
# Prints "PASS name" / "FAIL name" (tests/run.sh counts them).
cd "$(dirname "$0")/.." || exit 1
CC=${CC:-cc}

allowed() { # MODULE: the folders (besides its own) its includes may come from
    case $1 in
    base) echo "" ;;
    router | pool | persist) echo "base public" ;;
    kernel) echo "base router pool persist" ;;
    subsystems) echo "public" ;;
    esac
}

# The folder a quoted include names, or "public" for the public headers.
owner() { # HEADER
    case $1 in
    hypha.h | hypha_ext.h) echo public; return ;;
    esac
    for d in base router pool persist kernel subsystems; do
        [ -f "$d/$1" ] && { echo "$d"; return; }
    done
    echo unknown
}

for m in base router pool persist kernel subsystems; do
    [ -d "$m" ] || continue
    bad=""
    for f in "$m"/*.c "$m"/*.h; do
        [ -f "$f" ] || continue
        for h in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
            case $h in
            */* | *..*) bad="$bad $f:$h"; continue ;;
            esac
            [ -f "$m/$h" ] && continue
            o=$(owner "$h")
            case " $(allowed "$m") " in
            *" $o "*) ;;
            *) bad="$bad $f:$h($o)" ;;
            esac
        done
    done
    if [ -z "$bad" ]; then
        echo "PASS includes-of-$m"
    else
        echo "FAIL includes-of-$m: may not include$bad"
    fi
done

# probe MODULE HEADER WANT: compile '#include "HEADER"' with MODULE's flags;
# WANT is ok or fail.
probe() {
    eval "flags=\${INC_$1-unset}"
    if [ "$flags" = unset ]; then
        echo "FAIL build-flags-of-$1: INC_$1 not in the environment (run through make test)"
        return
    fi
    if printf '#include "%s"\n' "$2" | $CC -std=c11 -D_GNU_SOURCE -fsyntax-only $flags \
        -x c - >/dev/null 2>&1; then got=ok; else got=fail; fi
    if [ "$got" = "$3" ]; then
        echo "PASS build-$1-$2-$3"
    else
        echo "FAIL build-$1-$2: wanted $3, got $got"
    fi
}
probe base hy_common.h ok
probe base hypha.h fail
probe base kernel.h fail
for m in router pool persist; do
    probe "$m" hy_common.h ok
    probe "$m" hypha.h ok
    probe "$m" kernel.h fail
done
probe router pool.h fail
probe pool journal.h fail
probe persist router.h fail
probe subsystems hypha.h ok
probe subsystems kernel.h fail
probe subsystems hy_common.h fail
probe kernel router.h ok
