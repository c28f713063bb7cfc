"""When a call may go out and how hard it is tried: the scheduler, its admission and adaptive
concurrency, the server's pace, client-side limits (local or shared in Redis), the budget and prices."""
