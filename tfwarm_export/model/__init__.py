"""What the SavedModel declares and needs: its signatures and the op libraries it loads."""
