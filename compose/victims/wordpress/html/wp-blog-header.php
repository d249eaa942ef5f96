<?php
/**
 * Loads the WordPress environment and template (lab copy: nothing here runs).
 */
if ( ! isset( $wp_did_header ) ) {
	$wp_did_header = true;
	require_once __DIR__ . '/wp-load.php';
}
