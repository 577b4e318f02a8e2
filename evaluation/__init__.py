"""Evaluation: how good generated tests are. Scoring against the developers' tests (valid syntax,
CodeBLEU), judging in the sandbox (pass@1, coverage, mutants), the Java runner (JUnit 5, JaCoCo), the
`eval` and `score` commands, the datasets they ship (HumanEval, HumanEval-X Java), and real functions of
pinned public packages or of your project, judged per function beside Pynguin as the reference."""
