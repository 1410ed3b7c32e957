# Sourced by scripts/experiments.sh and scripts/experiments_conv.sh; not run on its own.
#
# append_summary LABEL DIR SECS: after an `l2l compare --out DIR`, appends LABEL,SECS to
# $out/times.csv.tmp and DIR/summary.csv's rows, each prefixed by LABEL, to
# $out/results.csv.tmp. results.csv has one header, taken from the first summary; every
# later summary must have the same columns. Needs $out and die().
append_summary() {
    label=$1 dir=$2 secs=$3
    printf '%s,%d\n' "$label" "$secs" >> "$out/times.csv.tmp"
    header=$(head -n 1 "$dir/summary.csv")
    if [ ! -f "$out/results.csv.tmp" ]; then printf 'experiment,%s\n' "$header" > "$out/results.csv.tmp"
    elif [ "experiment,$header" != "$(head -n 1 "$out/results.csv.tmp")" ]; then
        die "$dir/summary.csv has the columns '$header', unlike the experiments before it"
    fi
    awk -F, -v label="$label" 'NR > 1 { print label "," $0 }' "$dir/summary.csv" >> "$out/results.csv.tmp"
}
