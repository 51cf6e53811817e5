package vmspec

// Clone returns a deep copy of the definition.
func (vm *VM) Clone() *VM {
	if vm == nil {
		return nil
	}
	c := *vm
	c.CPU = clonePtr(vm.CPU)
	c.Memory = clonePtr(vm.Memory)
	c.Display = clonePtr(vm.Display)
	c.USB = clonePtr(vm.USB)
	c.Console = clonePtr(vm.Console)
	c.Sound = clonePtr(vm.Sound)
	c.Watchdog = clonePtr(vm.Watchdog)
	c.RNG = clonePtr(vm.RNG)
	c.Kernel = clonePtr(vm.Kernel)
	c.Disks = cloneSlice(vm.Disks)
	c.NICs = cloneSlice(vm.NICs)
	c.Inputs = cloneSlice(vm.Inputs)
	if vm.Metadata != nil {
		c.Metadata = make(map[string]string, len(vm.Metadata))
		for k, v := range vm.Metadata {
			c.Metadata[k] = v
		}
	}
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}
