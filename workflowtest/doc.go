// Package workflowtest helps test code built on package workflow: Stub is
// a fake task handler that gives a configured result and records how it
// was called, to be swapped in for a real handler with
// workflow.ReplaceTask. The rest of the workflow runs for real, so a test
// checks the wiring, the data flow and the retry policy without the side
// effects of the stubbed tasks.
//
// A test of a pipeline whose "charge" task calls a payment service that is
// down once, and whose "save" task writes to a database:
//
//	func TestCheckoutRetriesTheCharge(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) {
//			charge := workflowtest.FailsThenReturns[Order, Receipt](1, errUnavailable, Receipt{ID: "r-1"})
//			save := workflowtest.Returns[Receipt, string]("saved")
//			start := time.Now()
//
//			out, err := checkout.Run(t.Context(), Order{ID: "o-1"},
//				workflow.ReplaceTask("charge", charge.Handler),
//				workflow.ReplaceTask("save", save.Handler),
//			)
//
//			require.NoError(t, err)
//			require.Equal(t, "saved", out)
//			require.Equal(t, 2, charge.Calls(), "one failure, one retry")
//			require.Equal(t, []Receipt{{ID: "r-1"}}, save.Inputs())
//			require.Equal(t, time.Minute, time.Since(start), "the charge task's retry delay")
//		})
//	}
//
// The replaced tasks keep their Dependencies, Retry and Timeout: only the
// handler changes, and only for that run. Under testing/synctest, retry
// delays and timeouts pass in fake time, so the test above takes no real
// minute.
package workflowtest
