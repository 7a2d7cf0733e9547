# Smoke test of certify:
#   cmake -DPROGRAM=<certify> -DPYTHON=<python3> -DSOURCE=<examples dir> -DWORK=<scratch dir> -P test_certify.cmake
# 1. trains a small model inline, certifies examples/data/word_order.tsv and saves the model;
# 2. reloads that checkpoint and certifies again with --counts: the rows must be identical, and
#    check_certify_output.py recomputes every pA_lower and radius from the printed counts;
# 3. with n = 1 no Clopper-Pearson bound at alpha 0.001 reaches 1/2: every row must abstain;
# 4. --generate / --write-data round trip, and bad input (malformed data, ids outside the vocabulary).
set(data ${SOURCE}/data/word_order.tsv)
set(check ${SOURCE}/check_certify_output.py)
file(MAKE_DIRECTORY ${WORK})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${ARGN}\nexited with ${rc}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

function(expect_failure regex)
  execute_process(COMMAND ${PROGRAM} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "${regex}")
    message(FATAL_ERROR "certify ${ARGN}: exit ${rc}, stderr\n${err}\nexpected failure matching '${regex}'")
  endif()
  message(STATUS "ok: fails with ${err}")
endfunction()

set(common --sigma 0.05 --alpha 0.001 --n0 20 --n 100 --seed 7)
run(${PROGRAM} --data ${data} ${common} --train-steps 100 --save-model ${WORK}/model.safetensors -o ${WORK}/inline.tsv)
run(${PROGRAM} --data ${data} ${common} --checkpoint ${WORK}/model.safetensors --counts -o ${WORK}/reloaded.tsv)
run(${PYTHON} ${check} ${WORK}/reloaded.tsv --data ${data} --sigma 0.05 --alpha 0.001 --n 100 --min-certified 1
    --compare ${WORK}/inline.tsv)
run(${PYTHON} ${check} ${WORK}/inline.tsv --data ${data} --sigma 0.05 --alpha 0.001 --n 100)

run(${PROGRAM} --data ${data} --sigma 0.05 --n0 20 --n 1 --skip 3 --checkpoint ${WORK}/model.safetensors --counts
    -o ${WORK}/abstain.tsv)
run(${PYTHON} ${check} ${WORK}/abstain.tsv --data ${data} --sigma 0.05 --alpha 0.001 --n 1 --skip 3 --expect-all-abstain)

run(${PROGRAM} --generate 6 --write-data ${WORK}/generated.tsv --checkpoint ${WORK}/model.safetensors --sigma 0.05
    --n0 10 --n 30 --counts -o ${WORK}/generated_rows.tsv)
run(${PYTHON} ${check} ${WORK}/generated_rows.tsv --data ${WORK}/generated.tsv --sigma 0.05 --alpha 0.001 --n 30)

expect_failure("data '.*word_order_bad.tsv' line 3: token id must be a non-negative integer, got 'x'"
               --data ${SOURCE}/data/word_order_bad.tsv --checkpoint ${WORK}/model.safetensors)
file(WRITE ${WORK}/bad_ids.tsv "1\t5 1 2\n# a comment line\n0\t5 250 2\n")
expect_failure("data '.*bad_ids.tsv' line 3: token ids must be in \\[0, 200\\) for this model, got 250"
               --data ${WORK}/bad_ids.tsv --checkpoint ${WORK}/model.safetensors)
expect_failure("--data or --generate is required" --checkpoint ${WORK}/model.safetensors)
