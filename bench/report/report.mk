# bench-report: every benchmark family's figures as SVG plots (gnuplot) on one
# static page, build/report/index.html, with the raw JSON lines beside it
# (bench/report/report.sh says what is plotted and how). Included by the
# GNUmakefile after bench/peers/peers.mk, whose peer programs it reuses; uses
# the GNUmakefile's BUILD and install_missing.
#
#   make bench-report                  default sizes: a few minutes on 2 cores
#   REPORT_QUICK=1 make bench-report   small sizes, well under a minute

REPORT_DEPS := gnuplot-nox:/usr/bin/gnuplot

.PHONY: bench-report report-deps
report-deps:
	$(call install_missing,$(REPORT_DEPS))

bench-report: report-deps peer-deps $(PEER_BINS) $(BUILD)/hypha-bench
	BUILD=$(BUILD) sh bench/report/report.sh

# tests/check_report.sh runs the script in quick mode where gnuplot is
# installed; there (and only there) make test builds the bench it needs. The
# sanitizer builds leave it out: the bench is timed, not checked, there.
ifneq ($(wildcard /usr/bin/gnuplot),)
ifeq ($(SAN),)
test: $(BUILD)/hypha-bench
endif
endif
