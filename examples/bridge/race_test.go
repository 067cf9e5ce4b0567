//go:build linux && race

package main

// raceEnabled tells the end-to-end tests to build the binary with -race too.
const raceEnabled = true
