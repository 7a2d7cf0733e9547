# Smoke test of align_score: cmake -DPROGRAM=<align_score> -DDATA=<examples/data> -P test_align_score.cmake
# The expected numbers were computed by hand from the fixture files; examples/data/README.md shows the sums.

function(expect_output expected)
  execute_process(COMMAND ${PROGRAM} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "align_score ${ARGN} exited with ${rc}: ${err}")
  endif()
  if(NOT out STREQUAL expected)
    message(FATAL_ERROR "align_score ${ARGN} printed\n${out}\nexpected\n${expected}")
  endif()
  message(STATUS "ok: align_score ${ARGN}")
endfunction()

function(expect_failure code regex)
  execute_process(COMMAND ${PROGRAM} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL code)
    message(FATAL_ERROR "align_score ${ARGN} exited with '${rc}', expected ${code}; stdout:\n${out}\nstderr:\n${err}")
  endif()
  if(NOT err MATCHES "${regex}")
    message(FATAL_ERROR "align_score ${ARGN}: stderr\n${err}\ndoes not match '${regex}'")
  endif()
  message(STATUS "ok: align_score ${ARGN} fails with: ${err}")
endfunction()

# |S| = 2 + 3 + 2, |P| = 4 + 3 + 3, |A| = 4 + 3 + 3, |A n S| = 2 + 2 + 1, |A n P| = 3 + 2 + 2:
# precision 7/10, recall 5/7, F1 70/99 = 0.70707, AER 1 - 12/17 = 0.29412.
set(default_scores
"sentence pairs:        3
sure links |S|:        7
possible links |P|:    10 (P includes S)
hypothesis links |A|:  10
|A n S|:               5
|A n P|:               7
precision:             0.7000
recall:                0.7143
F1:                    0.7071
AER:                   0.2941
")
expect_output("${default_scores}" ${DATA}/align_gold.txt ${DATA}/align_hyp.txt)
# The same links written 1-based, with the hypothesis target-source and the gold using "?" for one possible link.
expect_output("${default_scores}" --one-based --reverse ${DATA}/align_gold_1based.txt ${DATA}/align_hyp_1based_reversed.txt)
expect_output("${default_scores}" --hyp-one-based -r ${DATA}/align_gold.txt ${DATA}/align_hyp_1based_reversed.txt)
# Sentence-pair ids ("id<TAB>links") on one side only are fine.
expect_output("${default_scores}" ${DATA}/align_gold_ids.txt ${DATA}/align_hyp.txt)

# Possible links dropped: S = P with 7 links, |A n S| = |A n P| = 5: precision 1/2, recall 5/7, F1 10/17, AER 7/17.
expect_output(
"sentence pairs:        3
sure links |S|:        7
possible links |P|:    7 (P includes S)
hypothesis links |A|:  10
|A n S|:               5
|A n P|:               5
precision:             0.5000
recall:                0.7143
F1:                    0.5882
AER:                   0.4118
" --gold-links sure-only ${DATA}/align_gold.txt ${DATA}/align_hyp.txt)

# Every gold link sure: S = P with 10 links, 7 found: precision = recall = F1 = 0.7, AER 1 - 14/20 = 0.3.
# With alpha 0.25, F = 1 / (0.25 / 0.7 + 0.75 / 0.7) = 0.7 as well.
expect_output(
"sentence pairs:        3
sure links |S|:        10
possible links |P|:    10 (P includes S)
hypothesis links |A|:  10
|A n S|:               7
|A n P|:               7
precision:             0.7000
recall:                0.7000
F (alpha=0.2500):      0.7000
AER:                   0.3000
" --gold-links all-sure --alpha 0.25 ${DATA}/align_gold.txt ${DATA}/align_hyp.txt)

# Bad input: a malformed link (file and line named), 1-based flag on a 0-based file, a missing file, a line
# count mismatch, unknown option values.
expect_failure(1 "align_hyp_malformed.txt' line 2: malformed link '1:1'" ${DATA}/align_gold.txt ${DATA}/align_hyp_malformed.txt)
expect_failure(1 "align_hyp.txt' line 1: index 0 in link '0-0' with 1-based indices" --one-based ${DATA}/align_gold_1based.txt ${DATA}/align_hyp.txt)
expect_failure(1 "cannot open.*no_such_file.txt|no_such_file.txt.*cannot open" ${DATA}/align_gold.txt ${DATA}/no_such_file.txt)
expect_failure(1 "align_hyp_two_lines.txt' has 2 sentence pairs \\(lines\\) but '.*align_gold.txt' has 3" ${DATA}/align_gold.txt ${DATA}/align_hyp_two_lines.txt)
expect_failure(1 "line 2: sentence pair id 's3' in '.*align_hyp_ids_swapped.txt' does not match id 's2' in '.*align_gold_ids.txt'"
               ${DATA}/align_gold_ids.txt ${DATA}/align_hyp_ids_swapped.txt)
expect_failure(2 "--gold-links: maybe not in" --gold-links maybe ${DATA}/align_gold.txt ${DATA}/align_hyp.txt)
