# Shared by every plot of bench/report/report.sh: an SVG with its own size
# (the page's CSS scales it down), white background (readable in dark themes
# too), no mouse script, so the page needs no JavaScript. Callers set `out`.
set terminal svg size 760,420 fixed noenhanced font "sans,12" background "#ffffff"
set output out
set encoding utf8
set datafile separator whitespace
set datafile missing "?"
set border 3
set tics nomirror
set grid ytics lc rgb "#dddddd" lt 1
set key top right noopaque
set style fill solid 0.85 border -1
