# perf/steps.awk: groups `perf report --no-children --sort dso,sym --stdio -q` lines into the
# steps of a card query, each with its share and the ns per answer it stands for (-v ns=N,
# the CPU ns per answer of the profiled run). Used by perf/breakdown.sh (the server under
# load) and perf/bench_steps.sh (the session bench, no kernel), so both group alike.
NF && $1 ~ /%$/ {
    p = $1; sub("%", "", p); line = $0
    if (line ~ /\[k\]/) step = "kernel: TCP, io_uring, scheduling"
    else if (line ~ /read_int|parse_command|parse_multibulk|Session>::process|RespSession|str::converts::from_utf8|run_utf8_validation/) step = "RESP parse (frame, UTF-8 check)"
    else if (line ~ /normalize_card_text|Date::parse|InsurerNumber::parse|parse_reusing|Args::text|trim|text::fold|unicode_normalization|Recompositions|Decompositions|Branch::parse|date_and_limit|parse_card|is_ascii|wide_ascii/) step = "fields: parse and normalize"
    else if (line ~ /encode_key_part|card_key|card_probe|slots|insurer_index/) step = "card key build, insurer slot"
    else if (line ~ /prefetch_probe|prefetch_segment|prefetch_insurer|probed_records|directory_get|memcmp|fst/) step = "directory probe"
    else if (line ~ /prefetch_text|Index<B>::view|record_view|CardRecords|person_entry|person_records|prefetch_person|find_person|person_bucket|lost_person|RecordView/) step = "record reads (card records, lost cards persons)"
    else if (line ~ /card_in|nearest_before|covers/) step = "decision (SPEC 4.1)"
    else if (line ~ /write_json|write_qualification|write_answer|write_iso|Date::ymd|write_small_int|write_date|write_opt_code|memmove|memcpy|write_decimal|end_bulk|begin_bulk|write_bulk/) step = "answer JSON, RESP framing, copies"
    else if (line ~ /answer_queued|answer_group|answer_slot|answer_alone/) step = "query group (steps inlined: prefetch loops, probes)"
    else if (line ~ /monoio|io_uring|serve_connection|spin|Relay|CoreStage|runtime|vdso|clock_gettime|Instant|today_jst|metrics|malloc|free|mi_/) step = "runtime: monoio, io_uring submission, clocks, metrics"
    else step = "other"
    share[step] += p
}
END { for (s in share) printf "%6.2f%% %6.0f ns  %s\n", share[s], share[s] * ns / 100, s }
