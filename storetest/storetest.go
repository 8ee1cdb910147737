// Package storetest is the conformance suite of workflow.Store: the rules
// every store follows, so that runs, Resume and Recover behave the same
// whichever store keeps them. A store proves itself by passing Run, called
// from a test of its own package with a function that opens a new, empty
// store for each subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) workflow.Store {
//			s, err := mystore.Open(filepath.Join(t.TempDir(), "runs.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite drives the store through Store and Recorder alone, as the
// engine does: it creates runs and appends batches of entries to them, and
// expects every RunStatus the store returns to be what folding the same
// entries with workflow.RunStatus.Apply gives. Payloads go in as the engine
// hands them over: values (Payload.Value) for a store that is not
// Persistent, encoded (Payload.Data) for one that is, in JSON and once in
// bytes that are not JSON, as another Codec may give; Payloads must give
// back the same values, or the same bytes. The suite never waits for a
// lease to expire: it checks ownership as it stands whatever the lease (a
// run is its creator's until a batch ends or interrupts it).
//
// The store open returns is used with its defaults, so the suite checks
// only what any such store promises: that runs under way are never dropped,
// for one, but not how many ended runs it keeps (at least the newest 100
// of a workflow, which the suite reads back). Checks of a store's own
// options belong in the store's own tests. Times are compared as instants:
// a store may give them back in another location, but must keep them to
// the nanosecond.
//
// A store that is also a workflow.ScheduleStore, or a
// workflow.OrphanClaimer, is held to the rules of that interface too; for
// one that is not, those subtests are skipped.
package storetest

import (
	"testing"

	"github.com/b3b01171/workflow"
)

// Run is the conformance suite every Store must pass. It runs one subtest
// per rule, each named for the rule it checks, and calls open in each for
// a new, empty store; open may use t for cleanup and to fail the test. The
// subtests run one after the other.
func Run(t *testing.T, open func(t *testing.T) workflow.Store) {
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			r.check(newFixture(t, open(t)))
		})
	}
}

// rules are the rules of the suite, in the order Run checks them.
var rules = []struct {
	name  string
	check func(f *fixture)
}{
	// Recording: record.go.
	{"CreateRecordsAPendingRunWithoutEvents", createRecordsAPendingRun},
	{"CreateRefusesADuplicateRunID", createRefusesADuplicate},
	{"SameRunIDUnderAnotherWorkflowIsAnotherRun", sameRunIDUnderAnotherWorkflow},
	{"AppendedEntriesFoldAsApplyFoldsThem", appendedEntriesFoldAsApply},
	{"EntryIndexFallsBackToTaskName", entryIndexFallsBackToName},
	{"AppendIsAllOrNone", appendIsAllOrNone},
	{"RunInterruptedInterruptsRunningTasks", runInterruptedInterruptsRunningTasks},
	{"RunResumedResetsUnfinishedTasks", runResumedResetsUnfinishedTasks},
	{"ConcurrentRunsRecordEveryEntryInOrder", concurrentRunsRecordEveryEntry},
	{"RunsUnderWayOutliveRetention", runsUnderWayOutliveRetention},
	{"PayloadsHoldInputAndSucceededOutputs", payloadsHoldInputAndOutputs},
	{"PayloadsHoldWhatTasksThatDidNotSucceedKept", payloadsHoldWhatTasksThatDidNotSucceedKept},
	{"RunStartedWithoutPayloadHasNoInput", runStartedWithoutPayloadHasNoInput},
	{"MapItemEventsKeepTheirItem", itemEventsKeepTheirItem},
	{"SubChildRunKeepsItsParentRunID", childRunKeepsItsParentRunID},

	// Reading: read.go.
	{"GetReturnsACopy", getReturnsACopy},
	{"GetWithoutRunIDIsTheMostRecentlyCreated", getWithoutRunIDIsTheNewest},
	{"UnknownRunIsNotFound", unknownRunIsNotFound},
	{"ListIsNewestFirst", listIsNewestFirst},
	{"ListLimitKeepsTheNewest", listLimitKeepsTheNewest},
	{"ListStateKeepsRunsInThatState", listStateKeepsRunsInThatState},
	{"ListBeforePagesThroughEveryRunOnce", listBeforePagesThroughEveryRun},
	{"ListBeforeWithStatePagesThroughMatchingRuns", listBeforeWithStatePages},
	{"ListBeforeUnknownRunIsNotFound", listBeforeUnknownRunIsNotFound},
	{"ListSummaryLeavesOutEventsAndPayloads", listSummaryLeavesOutEvents},
	{"ListOfUnknownWorkflowIsEmpty", listOfUnknownWorkflowIsEmpty},
	{"WorkflowsAreSorted", workflowsAreSorted},
	{"CancelledContextDoesNotHang", cancelledContextDoesNotHang},

	// Ownership: ownership.go.
	{"CreatedRunIsOwned", createdRunIsOwned},
	{"EndedRunCanBeReopened", endedRunCanBeReopened},
	{"InterruptedRunIsAnOrphan", interruptedRunIsAnOrphan},
	{"OneOfConcurrentReopensWins", oneOfConcurrentReopensWins},
	{"OrphansAreOldestFirst", orphansAreOldestFirst},
	{"ClaimOrphanTakesOnlyRunsUnderWayWithoutAnOwner", claimOrphanTakesOnlyRunsUnderWayWithoutAnOwner},
	{"OneOfConcurrentOrphanClaimsWins", oneOfConcurrentOrphanClaimsWins},

	// Schedules, for a workflow.ScheduleStore: schedule.go.
	{"EachFireIsClaimedOnce", eachFireIsClaimedOnce},
	{"PauseIsKeptPerWorkflow", pauseIsKeptPerWorkflow},
	{"MissedFiresAreClaimedOnceFromTheLastFire", missedFiresAreClaimedOnceFromTheLastFire},
	{"AFireClaimedAloneIsBusyWhileAScheduledRunIsUnderWay", aFireClaimedAloneIsBusyWhileAScheduledRunIsUnderWay},
	{"AFireClaimedAloneIsBusyWhileAnotherIsStarting", aFireClaimedAloneIsBusyWhileAnotherIsStarting},
}
