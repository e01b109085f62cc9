// ShoalBacktest: the decision side — a strategy's performance metrics with empyrical's names and
// definitions (`PerformanceMetrics`), from returns read from CSV (`ReturnSeries`).
