package engine

import "polyvirt/internal/store"

// storageRoutes are the storage routes (after the VMs' in the OpenAPI
// document): pools and images are an administrator's; volumes,
// templates and snapshots are managed with VMs.
func (e *Engine) storageRoutes() []route {
	vmm := store.RoleVMManager
	return []route{
		{Method: "GET", Path: "/pools", Summary: "List storage pools", h: e.listPools},
		{Method: "POST", Path: "/pools", Summary: "Add a storage pool to a cluster (shared, or local to one host)", h: e.createPool},
		{Method: "GET", Path: "/pools/{pool}", Summary: "Show a storage pool and what each host says of it", h: e.getPool},
		{Method: "DELETE", Path: "/pools/{pool}", Summary: "Remove a storage pool that holds no volume", h: e.deletePool},
		{Method: "GET", Path: "/volumes", Summary: "List volumes", h: e.listVolumes},
		{Method: "POST", Path: "/volumes", Summary: "Create a volume, or start its upload", Role: vmm, h: e.createVolume},
		{Method: "GET", Path: "/volumes/{pool}/{volume}", Summary: "Show a volume", h: e.getVolume},
		{Method: "DELETE", Path: "/volumes/{pool}/{volume}", Summary: "Delete a volume nothing uses", Role: vmm, h: e.deleteVolume},
		{Method: "POST", Path: "/volumes/{pool}/{volume}/resize", Summary: "Grow a volume", Role: vmm, h: e.resizeVolume},
		{Method: "POST", Path: "/volumes/{pool}/{volume}/clone", Summary: "Copy a volume whole into a new one", Role: vmm, h: e.cloneVolume},
		{Method: "PUT", Path: "/volumes/{pool}/{volume}/data", Summary: "Send an upload's data, from its offset", Role: vmm, MaxBody: MaxUploadBody, h: e.putVolumeData},
		{Method: "GET", Path: "/volumes/{pool}/{volume}/upload", Summary: "Where an upload stands", h: e.getVolumeUpload},
		{Method: "DELETE", Path: "/volumes/{pool}/{volume}/upload", Summary: "Cancel an upload", Role: vmm, h: e.deleteVolumeUpload},
		{Method: "GET", Path: "/images", Summary: "List the image library", h: e.listImages},
		{Method: "POST", Path: "/images", Summary: "Add a volume to the image library, with its architecture", h: e.createImage},
		{Method: "GET", Path: "/images/{image}", Summary: "Show an image", h: e.getImage},
		{Method: "DELETE", Path: "/images/{image}", Summary: "Remove an image and its volume", h: e.deleteImage},
		{Method: "GET", Path: "/templates", Summary: "List templates", h: e.listTemplates},
		{Method: "POST", Path: "/templates", Summary: "Make a template of a VM that is Down", Role: vmm, h: e.createTemplate},
		{Method: "GET", Path: "/templates/{template}", Summary: "Show a template", h: e.getTemplate},
		{Method: "DELETE", Path: "/templates/{template}", Summary: "Remove a template and its volumes", Role: vmm, h: e.deleteTemplate},
		{Method: "GET", Path: "/vms/{vm}/snapshots", Summary: "List a VM's snapshots", h: e.listSnapshots},
		{Method: "POST", Path: "/vms/{vm}/snapshots", Summary: "Take a snapshot of a VM (disk only, or with memory)", Role: vmm, h: e.createSnapshot},
		{Method: "POST", Path: "/vms/{vm}/snapshots/{snapshot}/revert", Summary: "Revert a VM to a snapshot", Role: vmm, h: e.revertSnapshot},
		{Method: "DELETE", Path: "/vms/{vm}/snapshots/{snapshot}", Summary: "Delete a VM's snapshot", Role: vmm, h: e.deleteSnapshot},
	}
}
