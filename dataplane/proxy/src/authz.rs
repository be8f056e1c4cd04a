//! Authorization policies (`ringmesh-authz`, shared with the control
//! plane's `ringmeshctl auth check`), read through the proxy's request
//! views: HTTP/1.1 heads in place, HTTP/2 header maps, with no copy.

pub use ringmesh_authz::*;

use crate::view::RequestView;

impl Request for dyn RequestView + '_ {
    fn method(&self) -> &[u8] {
        RequestView::method(self)
    }

    fn header(&self, name: &[u8]) -> Option<&[u8]> {
        RequestView::header(self, name)
    }
}
