// Package docs holds the reference pages that README.md links to (one
// Markdown file per subject) and the tests that keep them true: every
// example in README.md and these pages is run against a real local fleet
// or checked against the code it names (examples_test.go), every flag they
// name exists with the default they give, and every link they make points
// at a file that exists. docs/testing.md says how each kind of example is
// run or checked.
package docs
