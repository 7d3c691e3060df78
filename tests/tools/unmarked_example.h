// A header whose comment shows code without marking it as an example:
//
//   int answer = Compute();
//
// tools/header_examples.py must refuse it (HeaderExamples.UnmarkedCodeIsRefused).
#ifndef FFN_TESTS_TOOLS_UNMARKED_EXAMPLE_H_
#define FFN_TESTS_TOOLS_UNMARKED_EXAMPLE_H_
int Compute();
#endif  // FFN_TESTS_TOOLS_UNMARKED_EXAMPLE_H_
