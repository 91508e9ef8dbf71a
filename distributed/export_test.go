package distributed

// QueuedCalls returns how many calls of s wait for a batching lane.
func QueuedCalls(s *Store) int {
	if s.lanes == nil {
		return 0
	}
	s.lanes.mu.Lock()
	defer s.lanes.mu.Unlock()
	return len(s.lanes.queue)
}

// Dispatching reports whether s sends its calls through the dispatcher.
func Dispatching(s *Store) bool { return s.lanes != nil && s.lanes.dispatch }
