// Package pins holds a test only: the versions the project pins in more
// than one place agree. The reusable workflow (.github/workflows/purge.yml)
// calls the Dagger module at the release tag the workflow belongs to, with
// the Dagger CLI at dagger.json's engine version; the README and the docs
// pages show both, and ci.yml's Dagger job uses that engine version too.
//
// At a release: set purge.yml's module default and the README's and docs'
// "purge.yml@..." references to the new tag, in the commit that is tagged.
package pins
